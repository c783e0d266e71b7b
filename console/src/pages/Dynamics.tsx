import { useEffect, useMemo, useState } from "react";
import { HeatMap } from "../charts/HeatMap";
import { LineChart, type Marker, type Series } from "../charts/LineChart";
import { Network, type Link } from "../charts/Network";
import { KIND_COLOUR, KINDS, kindLabel, type Kind } from "../charts/kinds";
import { api, may, problemText, type SignedIn } from "../session";

interface PairScore {
  source: string;
  target: string;
  strength: number;
  harmony: number;
  conflict: number;
}

interface Matrix {
  window_start: string | null;
  window_end: string | null;
  voices: string[];
  matrices: Record<string, number[][]>;
  harmony: number | null;
  conflict: number | null;
  pairs: PairScore[];
}

interface HarmonyPoint {
  window_start: string;
  harmony: number;
  conflict: number;
}

interface Emergence {
  window_start: string;
  type: string;
  probability: number;
}

interface VoiceSummary {
  voice_id: string;
  state: { influence: { mean: number } } | null;
}

//: a pair in conflict: most of what passes between them is competition and suppression
const CONFLICT_AT = 0.5;
const SPANS = ["1m", "5m", "15m", "1h"] as const;

const fixed = (v: number | null | undefined) => (v === null || v === undefined ? "–" : v.toFixed(2));

/** The collective: who acts on whom (network and matrix per kind), harmony and conflict
 * over the last hour with emergence marked, and the pairs in conflict. */
export function Dynamics({ person }: { person: SignedIn }) {
  const [span, setSpan] = useState<(typeof SPANS)[number]>("5m");
  const [kind, setKind] = useState<Kind>("COOPERATION");
  const [matrix, setMatrix] = useState<Matrix | null>(null);
  const [influence, setInfluence] = useState<Record<string, number>>({});
  const [history, setHistory] = useState<HarmonyPoint[]>([]);
  const [emergence, setEmergence] = useState<Emergence[]>([]);
  const [error, setError] = useState("");
  const [loads, setLoads] = useState(0);
  const analyst = may(person.role, "analyst");

  useEffect(() => {
    let live = true;
    const start = encodeURIComponent(new Date(Date.now() - 3600_000).toISOString());
    void (async () => {
      const [m, v, h, e] = await Promise.all([
        api(`/api/v1/interactions/matrix?window=${span}`),
        api("/api/v1/voices"),
        api(`/api/v1/interactions/harmony?start=${start}`),
        analyst ? api(`/api/v1/emergence?detected=true&start=${start}`) : Promise.resolve(null),
      ]);
      if (!live) return;
      if (m.ok) {
        setMatrix(await m.json());
        setError("");
      } else setError(await problemText(m));
      if (v.ok) {
        const voices: VoiceSummary[] = (await v.json()).voices;
        setInfluence(Object.fromEntries(voices.map((s) => [s.voice_id, s.state?.influence.mean ?? 0])));
      }
      if (h.ok) setHistory((await h.json()).windows);
      if (e?.ok) setEmergence((await e.json()).emergence);
    })();
    const next = window.setTimeout(() => setLoads((n) => n + 1), 5000);
    return () => {
      live = false;
      window.clearTimeout(next);
    };
  }, [span, analyst, loads]);

  const voices = useMemo(() => matrix?.voices ?? [], [matrix]);
  const links: Link[] = useMemo(() => {
    if (!matrix) return [];
    const out: Link[] = [];
    for (const k of KINDS) {
      (matrix.matrices[k] ?? []).forEach((row, i) =>
        row.forEach((strength, j) => {
          if (strength > 0 && i !== j) out.push({ source: voices[i], target: voices[j], kind: k, strength });
        }),
      );
    }
    return out;
  }, [matrix, voices]);
  const conflicted = useMemo(
    () => (matrix?.pairs ?? []).filter((p) => p.conflict >= CONFLICT_AT).sort((a, b) => b.conflict - a.conflict),
    [matrix],
  );
  const conflictKeys = useMemo(() => new Set(conflicted.map((p) => `${p.source}>${p.target}`)), [conflicted]);
  const series: Series[] = useMemo(
    () => [
      { name: "harmony", points: history.map((p) => [Date.parse(p.window_start), p.harmony]) },
      { name: "conflict", points: history.map((p) => [Date.parse(p.window_start), p.conflict]) },
    ],
    [history],
  );
  const markers: Marker[] = useMemo(
    () => emergence.map((e) => ({ at: Date.parse(e.window_start), label: e.type.toLowerCase() })),
    [emergence],
  );

  return (
    <section aria-labelledby="dynamics-title">
      <h1 id="dynamics-title">Collective dynamics</h1>
      <div className="filters">
        <label>
          Over the last
          <select value={span} onChange={(e) => setSpan(e.target.value as (typeof SPANS)[number])}>
            {SPANS.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </div>
      {error && <p role="alert" className="error">{error}</p>}
      <dl className="cards" data-testid="dynamics-scores">
        <div><dt>Voices</dt><dd>{voices.length}</dd></div>
        <div><dt>Harmony</dt><dd>{fixed(matrix?.harmony)}</dd></div>
        <div><dt>Conflict</dt><dd>{fixed(matrix?.conflict)}</dd></div>
        <div><dt>Pairs in conflict</dt><dd>{conflicted.length}</dd></div>
      </dl>
      <h2>Network</h2>
      <ul className="legend" aria-label="Kinds">
        {KINDS.map((k) => (
          <li key={k}>
            <span className={`swatch${k === "COMPETITION" || k === "SUPPRESSION" ? " dashed" : ""}`} style={{ borderColor: KIND_COLOUR[k] }} />
            {kindLabel(k)}
          </li>
        ))}
        <li>
          <span className="swatch conflict" /> pair in conflict
        </li>
      </ul>
      <Network
        voices={voices}
        influence={influence}
        links={links}
        conflicts={conflictKeys}
        label={`Interaction network over the last ${span}: ${voices.length} voices, ${links.length} links, ${conflicted.length} pairs in conflict`}
      />
      <h2>Matrix</h2>
      <div className="filters" role="radiogroup" aria-label="Kind of the matrix">
        {KINDS.map((k) => (
          <label key={k}>
            <span>
              <input type="radio" name="kind" value={k} checked={kind === k} onChange={() => setKind(k)} /> {kindLabel(k)}
            </span>
          </label>
        ))}
      </div>
      <HeatMap
        voices={voices}
        matrix={matrix?.matrices[kind] ?? []}
        label={`${kindLabel(kind)} strength from each voice (rows) to each voice (columns)`}
      />
      <h2>Harmony and conflict, last hour</h2>
      <LineChart
        series={series}
        markers={markers}
        label={`System harmony and conflict per window over the last hour; ${markers.length} emergence detections marked`}
      />
      {!analyst && <p className="muted">Emergence markers are shown to analysts and above.</p>}
      <h2>Pairs in conflict</h2>
      <div className="table-wrap">
        <table className="results" data-testid="conflict-pairs">
          <thead>
            <tr>
              <th scope="col">Pair</th>
              <th scope="col">Conflict</th>
              <th scope="col">Harmony</th>
              <th scope="col">Strength</th>
            </tr>
          </thead>
          <tbody>
            {conflicted.length === 0 && (
              <tr>
                <td colSpan={4} className="muted">No pair in conflict.</td>
              </tr>
            )}
            {conflicted.map((p) => (
              <tr key={`${p.source}>${p.target}`}>
                <th scope="row">{p.source} → {p.target}</th>
                <td>{p.conflict.toFixed(2)}</td>
                <td>{p.harmony.toFixed(2)}</td>
                <td>{p.strength.toFixed(1)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
