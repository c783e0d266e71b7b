import { useEffect, useMemo, useState } from "react";
import { LineChart, type Series } from "../charts/LineChart";
import { Link } from "../router";
import { api, problemText } from "../session";

interface Forecast {
  pred: number;
  low: number;
  high: number;
}

interface Prediction {
  voice_id: string;
  target_window_start: string;
  stress: Forecast;
  activation: Forecast;
  influence: Forecast;
  temperature: Forecast;
  risk: number;
  interval_level: number;
}

interface Conflict {
  source: string;
  target: string;
  probability: number;
  horizon_windows: number;
}

interface Outlook {
  window_start: string | null;
  model_version: string | null;
  voices: number;
  mean_predicted_stress: number | null;
  voices_at_risk: number;
  riskiest_voices: Prediction[];
  expected_conflicts: number;
  likeliest_conflicts: Conflict[];
  emergence: { probability: number; type: string; detected: boolean } | null;
}

interface Pattern {
  window_start: string;
  pattern: string;
  confidence: number;
  complexity: number;
  novelty: number;
}

const range = (f: Forecast) => `${f.pred.toFixed(2)} (${f.low.toFixed(2)}–${f.high.toFixed(2)})`;
const pct = (p: number) => `${(p * 100).toFixed(p < 0.1 ? 1 : 0)} %`;

/** What the models expect of the next window: the riskiest voices with their intervals,
 * conflicts ranked by probability, emergence, and the pattern history. */
export function Predictions() {
  const [outlook, setOutlook] = useState<Outlook | null>(null);
  const [patterns, setPatterns] = useState<Pattern[]>([]);
  const [error, setError] = useState("");
  const [loads, setLoads] = useState(0);

  useEffect(() => {
    let live = true;
    const start = encodeURIComponent(new Date(Date.now() - 3600_000).toISOString());
    void (async () => {
      const [o, p] = await Promise.all([
        api("/api/v1/predictions/system?limit=20"),
        api(`/api/v1/patterns?start=${start}&limit=200`),
      ]);
      if (!live) return;
      if (o.ok) {
        setOutlook(await o.json());
        setError("");
      } else setError(await problemText(o));
      if (p.ok) setPatterns((await p.json()).patterns);
    })();
    const next = window.setTimeout(() => setLoads((n) => n + 1), 5000);
    return () => {
      live = false;
      window.clearTimeout(next);
    };
  }, [loads]);

  const series: Series[] = useMemo(
    () =>
      (["confidence", "novelty", "complexity"] as const).map((m) => ({
        name: m,
        points: patterns.map((p) => [Date.parse(p.window_start), p[m]] as [number, number]).reverse(),
      })),
    [patterns],
  );

  return (
    <section aria-labelledby="predictions-title">
      <h1 id="predictions-title">Predictions</h1>
      {error && <p role="alert" className="error">{error}</p>}
      <dl className="cards" data-testid="outlook">
        <div><dt>Next window of</dt><dd>{outlook?.window_start ? new Date(outlook.window_start).toLocaleTimeString() : "–"}</dd></div>
        <div><dt>Mean predicted stress</dt><dd>{outlook?.mean_predicted_stress?.toFixed(2) ?? "–"}</dd></div>
        <div><dt>Voices at risk</dt><dd>{outlook ? `${outlook.voices_at_risk} / ${outlook.voices}` : "–"}</dd></div>
        <div><dt>Expected conflicts</dt><dd>{outlook?.expected_conflicts.toFixed(1) ?? "–"}</dd></div>
        <div>
          <dt>Emergence</dt>
          <dd>{outlook?.emergence ? `${pct(outlook.emergence.probability)} ${outlook.emergence.type.toLowerCase()}` : "–"}</dd>
        </div>
        <div><dt>Model</dt><dd className="small">{outlook?.model_version ?? "–"}</dd></div>
      </dl>
      <h2>Next window, riskiest voices</h2>
      <div className="table-wrap">
        <table className="results" data-testid="riskiest">
          <thead>
            <tr>
              <th scope="col">Voice</th>
              <th scope="col">Stress risk</th>
              <th scope="col">Stress</th>
              <th scope="col">Activation</th>
              <th scope="col">Influence</th>
              <th scope="col">Temperature</th>
            </tr>
          </thead>
          <tbody>
            {(outlook?.riskiest_voices ?? []).map((p) => (
              <tr key={p.voice_id}>
                <th scope="row">
                  <Link to={`/voices/${encodeURIComponent(p.voice_id)}`}>{p.voice_id}</Link>
                </th>
                <td>{pct(p.risk)}</td>
                <td>{range(p.stress)}</td>
                <td>{range(p.activation)}</td>
                <td>{range(p.influence)}</td>
                <td>{range(p.temperature)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Conflicts, most probable first</h2>
      <ol className="ranked" data-testid="likeliest-conflicts">
        {(outlook?.likeliest_conflicts ?? []).length === 0 && <li className="muted">No conflict predicted.</li>}
        {(outlook?.likeliest_conflicts ?? []).map((c) => (
          <li key={`${c.source}>${c.target}`}>
            <span>
              {c.source} → {c.target}
            </span>
            <meter min={0} max={1} value={c.probability} aria-label={`probability ${pct(c.probability)}`} />
            <span>{pct(c.probability)}</span>
          </li>
        ))}
      </ol>
      <h2>Pattern history, last hour</h2>
      <LineChart series={series} label="Pattern confidence, novelty and complexity per window over the last hour" />
      <div className="table-wrap">
        <table className="results" data-testid="patterns">
          <thead>
            <tr>
              <th scope="col">Window</th>
              <th scope="col">Pattern</th>
              <th scope="col">Confidence</th>
              <th scope="col">Novelty</th>
            </tr>
          </thead>
          <tbody>
            {patterns.slice(0, 12).map((p) => (
              <tr key={p.window_start}>
                <th scope="row">{new Date(p.window_start).toLocaleTimeString()}</th>
                <td>{p.pattern.toLowerCase()}</td>
                <td>{p.confidence.toFixed(2)}</td>
                <td>{p.novelty.toFixed(2)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
