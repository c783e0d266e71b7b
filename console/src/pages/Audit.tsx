import { useEffect, useState, type FormEvent } from "react";
import { api, problemText } from "../session";

interface AuditEvent {
  event_id: string;
  occurred_at: string;
  principal: string;
  role: string;
  action: string;
  target: string;
  rationale: string;
  outcome: string;
  status: number;
  detail: string;
}

interface Filters {
  principal: string;
  action: string;
  outcome: string;
}

/** Admins: who did what, what was refused and what the system did on its own. */
export function Audit() {
  const [filters, setFilters] = useState<Filters>({ principal: "", action: "", outcome: "" });
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [error, setError] = useState("");
  const [loads, setLoads] = useState(0);

  useEffect(() => {
    // the log grows as people act: look again every few seconds
    const every = window.setInterval(() => setLoads((n) => n + 1), 3000);
    return () => window.clearInterval(every);
  }, []);

  useEffect(() => {
    let live = true;
    const query = new URLSearchParams({ limit: "200" });
    for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
    void api(`/api/v1/audit?${query}`).then(async (r) => {
      if (!live) return;
      if (r.ok) {
        setEvents((await r.json()).events);
        setError("");
      } else setError(await problemText(r));
    });
    return () => {
      live = false;
    };
  }, [filters, loads]);

  function apply(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setFilters({
      principal: String(form.get("principal") ?? "").trim(),
      action: String(form.get("action") ?? "").trim(),
      outcome: String(form.get("outcome") ?? ""),
    });
  }

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <form className="filters" onSubmit={apply} aria-label="Filter the audit log">
        <label>
          Who
          <input name="principal" placeholder="user:olga, key:…" />
        </label>
        <label>
          Action
          <input name="action" placeholder="orchestration.request" />
        </label>
        <label>
          Outcome
          <select name="outcome" defaultValue="">
            <option value="">any</option>
            <option>OK</option>
            <option>DENIED</option>
            <option>FAILED</option>
          </select>
        </label>
        <button type="submit">Show</button>
      </form>
      {error && <p role="alert" className="error">{error}</p>}
      <div className="table-wrap">
        <table className="results" data-testid="audit">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Outcome</th>
              <th scope="col">Why / detail</th>
            </tr>
          </thead>
          <tbody>
            {events.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">No events.</td>
              </tr>
            )}
            {events.map((e) => (
              <tr key={e.event_id} className={e.outcome === "OK" ? "" : "refused"}>
                <th scope="row">{new Date(e.occurred_at).toLocaleString()}</th>
                <td>{e.principal}</td>
                <td>{e.action}</td>
                <td>{e.target}</td>
                <td>{e.outcome}{e.status ? ` (${e.status})` : ""}</td>
                <td>{e.rationale || e.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
