import { useEffect, useState, type FormEvent } from "react";
import { api, may, problemText, type SignedIn } from "../session";

interface Orchestration {
  orchestration_id: string;
  state: string;
  strategy: string;
  target_voices: string[];
  duration_seconds: number;
  voice_parameters: Record<string, Record<string, number>>;
  rationale: string;
  requested_by: string;
  decided_by: string;
  detail: string;
  requested_at: string;
  ends_at: string | null;
}

const STRATEGIES = ["adaptive", "direct", "evolution", "emergency"] as const;
// what each state allows (the server's rule: deltaomega/control/decisions.py)
const DECISIONS: Record<string, ("approve" | "reject" | "rollback")[]> = {
  PROPOSED: ["approve", "reject"],
  ACTIVE: ["rollback"],
};

/** Requests (operators), second-person decisions and the state of each orchestration. */
export function OrchestrationPage({ person }: { person: SignedIn }) {
  const [items, setItems] = useState<Orchestration[]>([]);
  const [message, setMessage] = useState("");
  const [loads, setLoads] = useState(0);
  const operator = may(person.role, "operator");

  useEffect(() => {
    let live = true;
    void api("/api/v1/orchestration").then(async (r) => {
      if (live && r.ok) setItems((await r.json()).orchestrations);
    });
    const every = window.setTimeout(() => setLoads((n) => n + 1), 3000);
    return () => {
      live = false;
      window.clearTimeout(every);
    };
  }, [loads]);

  async function request(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const strategy = String(form.get("strategy"));
    const influence = String(form.get("influence_weight") ?? "");
    const r = await api(`/api/v1/orchestration/${strategy}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        target_voices: String(form.get("voices"))
          .split(",")
          .map((v) => v.trim())
          .filter(Boolean),
        duration: Number(form.get("duration")),
        rationale: String(form.get("rationale")),
        ...(influence ? { parameters: { influence_weight: Number(influence) } } : {}),
      }),
    });
    setMessage(
      r.ok ? `Requested: orchestration ${(await r.json()).orchestration_id}` : await problemText(r),
    );
    setLoads((n) => n + 1);
  }

  async function decide(o: Orchestration, action: "approve" | "reject" | "rollback") {
    const rationale = window.prompt(`Why ${action} ${o.strategy} on ${o.target_voices.join(", ")}?`);
    if (!rationale) return;
    const r = await api(`/api/v1/orchestration/${o.orchestration_id}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ rationale }),
    });
    setMessage(r.ok ? `${action} sent for ${o.orchestration_id}` : await problemText(r));
    window.setTimeout(() => setLoads((n) => n + 1), 1000);
  }

  return (
    <section aria-labelledby="orchestration-title">
      <h1 id="orchestration-title">Orchestration</h1>
      {operator && (
        <form className="change" onSubmit={(e) => void request(e)} aria-label="Request an orchestration">
          <label>
            Strategy
            <select name="strategy" defaultValue="adaptive">
              {/* an emergency asks for the person's security key (a step-up) */}
              {STRATEGIES.filter((s) => s !== "emergency" || may(person.role, "admin")).map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <label>Voices (comma-separated)<input name="voices" required /></label>
          <label>Minutes active<input name="duration" type="number" min={1} max={1440} defaultValue={30} required /></label>
          <label>Influence weight (direct, evolution)<input name="influence_weight" type="number" min={0} max={2} step={0.01} /></label>
          <label className="wide">Rationale<textarea name="rationale" required minLength={3} maxLength={2000} /></label>
          <button type="submit">Request</button>
        </form>
      )}
      {message && <p role="status" data-testid="orchestration-message">{message}</p>}
      <ul className="alerts" data-testid="orchestrations">
        {items.length === 0 && <li className="muted">No orchestrations.</li>}
        {items.map((o) => (
          <li key={o.orchestration_id} data-id={o.orchestration_id}>
            <strong>{o.state}</strong> {o.strategy} · {o.target_voices.join(", ")} · requested by{" "}
            {o.requested_by}
            {o.decided_by && `, decided by ${o.decided_by}`}
            <br />
            {o.rationale}
            {o.detail && <em> — {o.detail}</em>}
            {operator && (
              <span className="actions">
                {(DECISIONS[o.state] ?? [])
                  // a second person approves: not the one who asked
                  .filter((a) => a !== "approve" || o.requested_by !== `user:${person.username}`)
                  .map((action) => (
                  <button key={action} type="button" onClick={() => void decide(o, action)}>
                    {action[0].toUpperCase() + action.slice(1)}
                  </button>
                ))}
              </span>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
