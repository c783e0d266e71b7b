import { useEffect, useRef, useState } from "react";
import { api, type SignedIn } from "../session";
import { follow } from "../sse";
import { Link } from "../router";

interface VoiceState {
  voice_id: string;
  window_start: string;
  count: number;
  stress_mean: number;
  activation_mean: number;
  influence_mean: number;
  temperature_mean: number;
}

interface Alert {
  alert_id: string;
  severity: string;
  subject: string;
  message: string;
  window_start: string;
}

interface HarmonyPoint {
  window_start: string;
  harmony: number;
  conflict: number;
}

interface Stats {
  mean: number;
}
interface VoiceSummary {
  voice_id: string;
  state: null | {
    window_start: string;
    count: number;
    stress: Stats;
    activation: Stats;
    influence: Stats;
    temperature: Stats;
  };
}

interface Health {
  ready: boolean;
  checks: Record<string, string>;
  lag: number | null;
  events_per_second: number | null;
  model_version: string | null;
}

const fmt = (n: number) => n.toFixed(2);
const time = (iso: string) => Date.parse(iso);

function flat(v: VoiceSummary): VoiceState | null {
  const s = v.state;
  if (!s) return null;
  return {
    voice_id: v.voice_id,
    window_start: s.window_start,
    count: s.count,
    stress_mean: s.stress.mean,
    activation_mean: s.activation.mean,
    influence_mean: s.influence.mean,
    temperature_mean: s.temperature.mean,
  };
}

/** Live voice states (from the voice-state feed), system harmony, recent alerts. */
export function Overview({ person }: { person: SignedIn }) {
  const [voices, setVoices] = useState<Map<string, VoiceState>>(new Map());
  const [feed, setFeed] = useState("connecting");
  const [updated, setUpdated] = useState<string>("");
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [harmony, setHarmony] = useState<HarmonyPoint | null>(null);
  const [health, setHealth] = useState<Health | null>(null);
  const pending = useRef<Map<string, VoiceState>>(new Map());

  useEffect(() => {
    // the latest closed window at once, then every new one from the feed; events are
    // gathered and drawn at most every 250 ms (a window is many states at once)
    void api("/api/v1/voices").then(async (response) => {
      if (!response.ok) return;
      const listed: VoiceSummary[] = (await response.json()).voices;
      for (const v of listed) {
        const state = flat(v);
        const newer = pending.current.get(v.voice_id);
        if (state && !(newer && time(newer.window_start) >= time(state.window_start))) {
          pending.current.set(v.voice_id, state);
        }
      }
    });
    const stop = follow(
      "/api/v1/stream/voice-states",
      (events) => {
        for (const e of events) {
          if (e.event !== "voice-state") continue;
          const state = e.data as VoiceState;
          pending.current.set(state.voice_id, state);
        }
      },
      setFeed,
    );
    const draw = window.setInterval(() => {
      if (!pending.current.size) return;
      const batch = pending.current;
      pending.current = new Map();
      setVoices((old) => {
        const next = new Map(old);
        for (const [id, state] of batch) {
          const seen = next.get(id);
          if (!seen || time(state.window_start) >= time(seen.window_start)) next.set(id, state);
        }
        return next;
      });
      setUpdated(new Date().toLocaleTimeString());
    }, 250);
    return () => {
      stop();
      window.clearInterval(draw);
    };
  }, [person.session]);

  useEffect(() => {
    let live = true;
    async function load() {
      const [a, h, r] = await Promise.all([
        api("/api/v1/alerts?limit=10"),
        api("/api/v1/interactions/harmony"),
        api("/api/v1/pipeline"),
      ]);
      if (!live) return;
      if (a.ok) setAlerts((await a.json()).alerts);
      if (h.ok) {
        const windows: HarmonyPoint[] = (await h.json()).windows;
        setHarmony(windows.length ? windows[windows.length - 1] : null);
      }
      if (r.ok) setHealth(await r.json());
    }
    void load();
    const every = window.setInterval(() => void load(), 5_000);
    return () => {
      live = false;
      window.clearInterval(every);
    };
  }, [person.session]);

  const rows = [...voices.values()].sort((a, b) => a.voice_id.localeCompare(b.voice_id));
  const latest = rows.reduce((m, v) => Math.max(m, time(v.window_start)), 0);

  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <dl className="cards">
        <div>
          <dt>Voices</dt>
          <dd data-testid="voice-count">{rows.length}</dd>
        </div>
        <div>
          <dt>Latest window</dt>
          <dd data-testid="latest-window">{latest ? new Date(latest).toLocaleTimeString() : "—"}</dd>
        </div>
        <div>
          <dt>Harmony</dt>
          <dd>{harmony ? fmt(harmony.harmony) : "—"}</dd>
        </div>
        <div>
          <dt>Conflict</dt>
          <dd>{harmony ? fmt(harmony.conflict) : "—"}</dd>
        </div>
        <div>
          <dt>Feed</dt>
          <dd data-testid="feed-status">{feed}</dd>
        </div>
        <div>
          <dt>Pipeline</dt>
          <dd
            data-testid="pipeline-ready"
            title={Object.entries(health?.checks ?? {})
              .map(([k, v]) => `${k}: ${v}`)
              .join("\n")}
          >
            {health ? (health.ready ? "ready" : "not ready") : "—"}
          </dd>
        </div>
        <div>
          <dt>Lag (records)</dt>
          <dd data-testid="pipeline-lag">{health?.lag ?? "—"}</dd>
        </div>
        <div>
          <dt>Events / s</dt>
          <dd data-testid="pipeline-rate">{health?.events_per_second ?? "—"}</dd>
        </div>
        <div>
          <dt>Model</dt>
          <dd className="small" data-testid="pipeline-model">
            {health?.model_version ?? "—"}
          </dd>
        </div>
      </dl>
      <p className="muted" aria-live="polite">
        {updated ? `Updated ${updated}` : "Waiting for the next window to close…"}
      </p>
      <h2>Voice states</h2>
      <div className="table-wrap">
        <table data-testid="voices">
          <thead>
            <tr>
              <th scope="col">Voice</th>
              <th scope="col">Events</th>
              <th scope="col">Stress</th>
              <th scope="col">Activation</th>
              <th scope="col">Influence</th>
              <th scope="col">Temperature</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((v) => (
              <tr key={v.voice_id}>
                <th scope="row">
                  <Link to={`/voices/${encodeURIComponent(v.voice_id)}`}>{v.voice_id}</Link>
                </th>
                <td>{v.count}</td>
                <td>{fmt(v.stress_mean)}</td>
                <td>{fmt(v.activation_mean)}</td>
                <td>{fmt(v.influence_mean)}</td>
                <td>{fmt(v.temperature_mean)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Recent alerts</h2>
      <ul className="alerts" data-testid="alerts">
        {alerts.length === 0 && <li className="muted">No alerts.</li>}
        {alerts.map((a) => (
          <li key={a.alert_id} className={`sev-${a.severity.toLowerCase()}`}>
            <strong>{a.severity}</strong> {a.subject}: {a.message}
          </li>
        ))}
      </ul>
    </section>
  );
}
