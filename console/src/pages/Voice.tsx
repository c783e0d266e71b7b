import { useEffect, useMemo, useState, type FormEvent } from "react";
import { LineChart, type Band, type Series } from "../charts/LineChart";
import { api, may, problemText, type SignedIn } from "../session";

const METRICS = ["stress", "activation", "influence", "temperature"] as const;

interface State {
  window_start: string;
  count: number;
  stress: { mean: number };
  activation: { mean: number };
  influence: { mean: number };
  temperature: { mean: number };
}

interface Values {
  sensitivity: number;
  activation_threshold: number;
  influence_weight: number;
}

interface Forecast {
  low: number;
  high: number;
}

type Prediction = { target_window_start: string } & Record<(typeof METRICS)[number], Forecast>;

interface Change extends Partial<Values> {
  change_id: string;
  rationale: string;
  requested_by: string;
  requested_at: string;
  expires_at: string | null;
}

/** A voice: its windows over the last hour, its parameters and (operators) a change form. */
export function Voice({ person, voice }: { person: SignedIn; voice: string }) {
  const [states, setStates] = useState<State[]>([]);
  const [params, setParams] = useState<Values | null>(null);
  const [changes, setChanges] = useState<Change[]>([]);
  const [predictions, setPredictions] = useState<Prediction[]>([]);
  const analyst = may(person.role, "analyst");
  const [error, setError] = useState("");
  const [result, setResult] = useState("");
  const [loads, setLoads] = useState(0);
  const id = encodeURIComponent(voice);

  useEffect(() => {
    let live = true;
    const from = new Date(Date.now() - 3600_000).toISOString();
    void (async () => {
      const [h, p, c, f] = await Promise.all([
        api(`/api/v1/voices/${id}/history?from=${encodeURIComponent(from)}`),
        api(`/api/v1/voices/${id}/parameters`),
        api(`/api/v1/voices/${id}/parameters/history`),
        // predicted intervals (the models' outputs are for analysts and above)
        analyst
          ? api(`/api/v1/predictions?voice_id=${id}&start=${encodeURIComponent(from)}&limit=1000`)
          : Promise.resolve(null),
      ]);
      if (!live) return;
      if (h.ok) setStates((await h.json()).states);
      else setError(await problemText(h));
      if (p.ok) setParams((await p.json()).parameters);
      if (c.ok) setChanges((await c.json()).changes);
      if (f?.ok) setPredictions((await f.json()).predictions);
    })();
    return () => {
      live = false;
    };
  }, [id, loads, analyst]);

  useEffect(() => {
    // parameters change by others' hands and by expiry; the history grows every window
    const every = window.setInterval(() => setLoads((n) => n + 1), 5000);
    return () => window.clearInterval(every);
  }, []);

  // one chart per metric: its window means, and (analysts) each window's predicted interval
  const charts = useMemo(
    () =>
      METRICS.map((m) => ({
        metric: m,
        series: [
          { name: m, points: states.map((s) => [Date.parse(s.window_start), s[m].mean] as [number, number]) },
        ] as Series[],
        bands: predictions.length
          ? ([
              {
                of: m,
                points: predictions
                  .map((p) => [Date.parse(p.target_window_start), p[m].low, p[m].high] as [number, number, number])
                  .sort((a, b) => a[0] - b[0]),
              },
            ] as Band[])
          : [],
      })),
    [states, predictions],
  );

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const parameters: Record<string, number> = {};
    for (const name of ["sensitivity", "activation_threshold", "influence_weight"]) {
      const value = String(form.get(name) ?? "");
      if (value !== "") parameters[name] = Number(value);
    }
    const minutes = String(form.get("duration") ?? "");
    const response = await api(`/api/v1/voices/${id}/parameters`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        parameters,
        rationale: String(form.get("rationale")),
        ...(minutes ? { expected_duration: Number(minutes) } : {}),
      }),
    });
    if (response.ok) {
      const accepted = await response.json();
      setResult(`Accepted: change ${accepted.change_id}` + (accepted.expires_at ? `, until ${new Date(accepted.expires_at).toLocaleString()}` : ""));
      setError("");
      window.setTimeout(() => setLoads((n) => n + 1), 1000);
    } else {
      setError(await problemText(response));
      setResult("");
    }
  }

  return (
    <section aria-labelledby="voice-title">
      <h1 id="voice-title">{voice}</h1>
      <div className="small-multiples">
        {charts.map((c) => (
          <figure key={c.metric}>
            <figcaption>{c.metric}</figcaption>
            <LineChart
              series={c.series}
              bands={c.bands}
              label={
                `${voice}: ${c.metric} window means over the last hour` +
                (c.bands.length ? ", with the predicted interval of each window shaded" : "")
              }
            />
          </figure>
        ))}
      </div>
      <h2>Parameters</h2>
      {params && (
        <dl className="cards" data-testid="parameters">
          <div><dt>Sensitivity</dt><dd>{params.sensitivity}</dd></div>
          <div><dt>Activation threshold</dt><dd>{params.activation_threshold}</dd></div>
          <div><dt>Influence weight</dt><dd>{params.influence_weight}</dd></div>
        </dl>
      )}
      {may(person.role, "operator") && (
        <form className="change" onSubmit={(e) => void submit(e)} aria-label="Change parameters">
          <label>Sensitivity (0–2)<input name="sensitivity" type="number" min={0} max={2} step={0.01} /></label>
          <label>Activation threshold (0–1)<input name="activation_threshold" type="number" min={0} max={1} step={0.01} /></label>
          <label>Influence weight (0–2)<input name="influence_weight" type="number" min={0} max={2} step={0.01} /></label>
          <label>Minutes (empty: until changed)<input name="duration" type="number" min={1} max={10080} /></label>
          <label className="wide">Rationale<textarea name="rationale" required minLength={3} maxLength={2000} /></label>
          <button type="submit">Apply</button>
        </form>
      )}
      {result && <p role="status" data-testid="change-result">{result}</p>}
      {error && <p role="alert" className="error">{error}</p>}
      <h2>Changes</h2>
      <ul className="alerts" data-testid="changes">
        {changes.length === 0 && <li className="muted">No changes.</li>}
        {changes.map((c) => (
          <li key={c.change_id}>
            {new Date(c.requested_at).toLocaleString()} · {c.requested_by}: {c.rationale}
          </li>
        ))}
      </ul>
    </section>
  );
}
