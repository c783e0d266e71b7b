import { useEffect, useMemo, useState } from "react";
import { LineChart, type Series } from "../charts/LineChart";
import { api, problemText } from "../session";

interface Table {
  name: string;
  columns: { name: string; type: string }[];
}
interface Result {
  columns: { name: string; type: string }[];
  rows: unknown[][];
  row_count: number;
  elapsed_ms: number;
}
interface Saved {
  name: string;
  sql: string;
}

const NUMERIC = /^(Nullable\()?(U?Int|Float|Decimal)/;

function csv(result: Result): string {
  const cell = (v: unknown) => {
    const text = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [result.columns.map((c) => cell(c.name)).join(","), ...result.rows.map((r) => r.map(cell).join(","))].join("\n");
}

/** SQL over the analysts' endpoint: the schema at hand, saved queries, a table, a chart, CSV. */
export function Workbench() {
  const [tables, setTables] = useState<Table[]>([]);
  const [saved, setSaved] = useState<Saved[]>([]);
  const [sql, setSql] = useState("SELECT voice_id, count() AS windows, avg(stress_mean) AS stress\nFROM voice_states\nGROUP BY voice_id\nORDER BY voice_id");
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState("");
  const [view, setView] = useState<"table" | "chart">("table");
  const [name, setName] = useState("");
  const [loads, setLoads] = useState(0);

  useEffect(() => {
    void api("/api/v1/query/schema").then(async (r) => r.ok && setTables((await r.json()).tables));
  }, []);
  useEffect(() => {
    void api("/api/v1/query/saved").then(async (r) => r.ok && setSaved((await r.json()).queries));
  }, [loads]);

  async function run() {
    const r = await api("/api/v1/query", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sql }),
    });
    if (r.ok) {
      setResult(await r.json());
      setError("");
    } else {
      setResult(null);
      setError(await problemText(r));
    }
  }

  async function save() {
    const r = await api(`/api/v1/query/saved/${encodeURIComponent(name)}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sql }),
    });
    setError(r.ok ? "" : await problemText(r));
    setLoads((n) => n + 1);
  }

  // the first column is the x axis: time when it holds times, categories otherwise
  const overTime = Boolean(result && /Date/.test(result.columns[0]?.type ?? ""));
  const categories = result && !overTime ? result.rows.map((r) => String(r[0])) : undefined;
  const series: Series[] = useMemo(() => {
    if (!result || result.columns.length < 2) return [];
    const x = (v: unknown, i: number) => (overTime ? Date.parse(String(v)) : i);
    return result.columns
      .map((c, k) => ({ c, k }))
      .filter(({ c, k }) => k > 0 && NUMERIC.test(c.type))
      .map(({ c, k }) => ({
        name: c.name,
        points: result.rows.map((row, i) => [x(row[0], i), Number(row[k])] as [number, number]),
      }));
  }, [result, overTime]);

  const download = result
    ? URL.createObjectURL(new Blob([csv(result)], { type: "text/csv" }))
    : undefined;

  return (
    <section aria-labelledby="workbench-title" className="workbench">
      <h1 id="workbench-title">Workbench</h1>
      <aside aria-label="Schema">
        <h2>Tables</h2>
        {tables.map((t) => (
          <details key={t.name}>
            <summary>{t.name}</summary>
            <ul>
              {t.columns.map((c) => (
                <li key={c.name}>
                  <code>{c.name}</code> <span className="muted">{c.type}</span>
                </li>
              ))}
            </ul>
          </details>
        ))}
        <h2>Saved</h2>
        <ul data-testid="saved">
          {saved.map((s) => (
            <li key={s.name}>
              <button type="button" className="link" onClick={() => setSql(s.sql)}>
                {s.name}
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <div className="editor">
        <label>
          SQL
          <textarea value={sql} onChange={(e) => setSql(e.target.value)} rows={8} spellCheck={false} />
        </label>
        <div className="filters">
          <button type="button" onClick={() => void run()}>Run</button>
          <label>
            Save as
            <input value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <button type="button" disabled={!name} onClick={() => void save()}>Save</button>
          {result && (
            <>
              <button type="button" onClick={() => setView(view === "table" ? "chart" : "table")}>
                {view === "table" ? "Show chart" : "Show table"}
              </button>
              <a href={download} download="query.csv">Export CSV</a>
            </>
          )}
        </div>
        {error && <p role="alert" className="error" data-testid="query-error">{error}</p>}
        {result && (
          <p className="muted" data-testid="query-summary">
            {result.row_count} rows in {result.elapsed_ms.toFixed(0)} ms
          </p>
        )}
        {result && view === "chart" && <LineChart series={series} categories={categories} label="The query's numeric columns" />}
        {result && view === "table" && (
          <div className="table-wrap">
            <table data-testid="query-result">
              <thead>
                <tr>{result.columns.map((c) => <th key={c.name} scope="col">{c.name}</th>)}</tr>
              </thead>
              <tbody>
                {result.rows.map((row, i) => (
                  <tr key={i}>{row.map((v, k) => <td key={k}>{v === null ? "" : String(v)}</td>)}</tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </div>
    </section>
  );
}
