import { useEffect, useState } from "react";
import { api, may, problemText, type SignedIn } from "../session";

interface Condition {
  condition_id: string;
  rule: string;
  subject: string;
  severity: string;
  state: "OPEN" | "ACKNOWLEDGED" | "RESOLVED";
  message: string;
  windows: number;
  opened_at: string;
  acknowledged_by: string;
}

/** Alert conditions, filtered; operators acknowledge and resolve them with a reason. */
export function Alerts({ person }: { person: SignedIn }) {
  const [conditions, setConditions] = useState<Condition[]>([]);
  const [state, setState] = useState("OPEN");
  const [severity, setSeverity] = useState("");
  const [message, setMessage] = useState("");
  const [loads, setLoads] = useState(0);
  const operator = may(person.role, "operator");

  useEffect(() => {
    let live = true;
    const query = new URLSearchParams();
    if (state) query.set("state", state);
    if (severity) query.set("severity", severity);
    void api(`/api/v1/alerts/conditions?${query}`).then(async (r) => {
      if (live && r.ok) setConditions((await r.json()).conditions);
    });
    const every = window.setInterval(() => setLoads((n) => n + 1), 5000);
    return () => {
      live = false;
      window.clearInterval(every);
    };
  }, [state, severity, loads]);

  async function act(c: Condition, action: "acknowledge" | "resolve") {
    const reason = window.prompt(`Why ${action} ${c.rule} on ${c.subject}?`);
    if (!reason) return;
    const r = await api(
      `/api/v1/alerts/conditions/${encodeURIComponent(c.condition_id)}/${action}`,
      {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason }),
      },
    );
    setMessage(r.ok ? `${action} sent for ${c.condition_id}` : await problemText(r));
    window.setTimeout(() => setLoads((n) => n + 1), 1000);
  }

  return (
    <section aria-labelledby="alerts-title">
      <h1 id="alerts-title">Alerts</h1>
      <div className="filters">
        <label>
          State
          <select value={state} onChange={(e) => setState(e.target.value)}>
            <option value="">any</option>
            <option>OPEN</option>
            <option>ACKNOWLEDGED</option>
            <option>RESOLVED</option>
          </select>
        </label>
        <label>
          Severity
          <select value={severity} onChange={(e) => setSeverity(e.target.value)}>
            <option value="">any</option>
            <option>CRITICAL</option>
            <option>WARNING</option>
            <option>INFO</option>
          </select>
        </label>
      </div>
      {message && <p role="status">{message}</p>}
      <ul className="alerts" data-testid="conditions">
        {conditions.length === 0 && <li className="muted">Nothing here.</li>}
        {conditions.map((c) => (
          <li key={c.condition_id} className={`sev-${c.severity.toLowerCase()}`}>
            <strong>{c.severity}</strong> {c.rule} · {c.subject} · {c.state}
            {c.acknowledged_by && ` (acknowledged by ${c.acknowledged_by})`}
            <br />
            {c.message} — {c.windows} windows since {new Date(c.opened_at).toLocaleTimeString()}
            {operator && c.state !== "RESOLVED" && (
              <span className="actions">
                {c.state === "OPEN" && (
                  <button type="button" onClick={() => void act(c, "acknowledge")}>
                    Acknowledge
                  </button>
                )}
                <button type="button" onClick={() => void act(c, "resolve")}>
                  Resolve
                </button>
              </span>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
