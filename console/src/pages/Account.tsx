import { useEffect, useState, type FormEvent } from "react";
import {
  api,
  may,
  problemText,
  registerKey,
  stepUp,
  turnOnNotifications,
  type SignedIn,
} from "../session";

interface Device {
  id: string;
  endpoint: string;
  device: string;
  created_ms: number;
}

interface SecurityKey {
  id: string;
  name: string;
  created_ms: number;
  last_used_ms: number | null;
}

interface Account {
  username: string;
  role: string;
  created_ms: number;
  disabled_ms: number | null;
  security_keys: number;
}

const when = (ms: number | null) => (ms ? new Date(ms).toLocaleString() : "never");

/** The person's security keys (second factor, step-up); for admins, everyone's accounts. */
export function AccountPage({ person }: { person: SignedIn }) {
  const [keys, setKeys] = useState<SecurityKey[]>([]);
  const [message, setMessage] = useState("");
  const [loads, setLoads] = useState(0);

  useEffect(() => {
    let live = true;
    void api("/api/v1/auth/security-keys").then(async (r) => {
      if (live && r.ok) setKeys(await r.json());
    });
    return () => {
      live = false;
    };
  }, [loads]);

  async function add(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const name = String(new FormData(event.currentTarget).get("name"));
    const failed = await registerKey(name);
    setMessage(failed ?? `Security key “${name}” added: signing in now asks for it.`);
    setLoads((n) => n + 1);
  }

  async function prove() {
    const failed = await stepUp();
    setMessage(failed ?? "Security key proved: emergency actions are allowed for a few minutes.");
    setLoads((n) => n + 1);
  }

  return (
    <section aria-labelledby="account-title">
      <h1 id="account-title">Account</h1>
      <p>
        Signed in as <strong>{person.username}</strong> ({person.role}).
      </p>
      <h2>Security keys</h2>
      <p className="muted">
        A security key (or the phone's or computer's own) is the second step of signing in, and
        emergency actions ask for it again.
      </p>
      <ul className="alerts" data-testid="security-keys">
        {keys.length === 0 && <li className="muted">No security key yet.</li>}
        {keys.map((k) => (
          <li key={k.id}>
            <strong>{k.name}</strong> · added {when(k.created_ms)} · last used {when(k.last_used_ms)}
          </li>
        ))}
      </ul>
      <form className="change" onSubmit={(e) => void add(e)} aria-label="Add a security key">
        <label>
          Name of the key
          <input name="name" required maxLength={60} defaultValue="my key" />
        </label>
        <button type="submit">Add a security key</button>
        {keys.length > 0 && (
          <button type="button" onClick={() => void prove()}>
            Prove my key now
          </button>
        )}
      </form>
      {message && (
        <p role="status" data-testid="account-message">
          {message}
        </p>
      )}
      <Notifications />
      {may(person.role, "admin") && <People />}
    </section>
  );
}

/** Critical alerts as notifications on this browser or phone (web push). */
function Notifications() {
  const [devices, setDevices] = useState<Device[]>([]);
  const [message, setMessage] = useState("");
  const [loads, setLoads] = useState(0);
  const permission = "Notification" in window ? Notification.permission : "unsupported";

  useEffect(() => {
    let live = true;
    void api("/api/v1/push/subscriptions").then(async (r) => {
      if (live && r.ok) setDevices(await r.json());
    });
    return () => {
      live = false;
    };
  }, [loads]);

  async function turnOn() {
    const failed = await turnOnNotifications();
    setMessage(failed ?? "Notifications are on for this device.");
    setLoads((n) => n + 1);
  }

  async function remove(device: Device) {
    const r = await api(`/api/v1/push/subscriptions/${device.id}`, { method: "DELETE" });
    setMessage(r.ok ? "That device gets no more notifications." : await problemText(r));
    setLoads((n) => n + 1);
  }

  return (
    <>
      <h2>Notifications</h2>
      <p className="muted">
        Critical alerts as notifications on this device, even with the console closed
        (where the alert routing has a web push channel). This browser: {permission}.
      </p>
      <button type="button" onClick={() => void turnOn()}>
        Turn on notifications on this device
      </button>
      {message && (
        <p role="status" data-testid="push-message">
          {message}
        </p>
      )}
      <ul className="alerts" data-testid="devices">
        {devices.length === 0 && <li className="muted">No device gets notifications.</li>}
        {devices.map((d) => (
          <li key={d.id}>
            {d.device || "a device"} · since {when(d.created_ms)}{" "}
            <button type="button" onClick={() => void remove(d)}>
              Remove
            </button>
          </li>
        ))}
      </ul>
    </>
  );
}

/** Admins: accounts, new ones, disabling, and resetting lost keys. */
function People() {
  const [accounts, setAccounts] = useState<Account[]>([]);
  const [message, setMessage] = useState("");
  const [loads, setLoads] = useState(0);

  useEffect(() => {
    let live = true;
    void api("/api/v1/accounts").then(async (r) => {
      if (live && r.ok) setAccounts(await r.json());
    });
    return () => {
      live = false;
    };
  }, [loads]);

  async function create(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const username = String(form.get("username"));
    const r = await api("/api/v1/accounts", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        username,
        password: String(form.get("password")),
        role: String(form.get("role")),
      }),
    });
    setMessage(r.ok ? `Account ${username} created.` : await problemText(r));
    setLoads((n) => n + 1);
  }

  async function act(account: Account, what: "disable" | "reset") {
    const path =
      what === "disable"
        ? `/api/v1/accounts/${encodeURIComponent(account.username)}`
        : `/api/v1/accounts/${encodeURIComponent(account.username)}/security-keys`;
    const r = await api(path, { method: "DELETE" });
    setMessage(
      r.ok
        ? what === "disable"
          ? `${account.username} is disabled; their sign-ins have ended.`
          : `${account.username}'s security keys are removed.`
        : await problemText(r),
    );
    setLoads((n) => n + 1);
  }

  return (
    <>
      <h2>People</h2>
      <div className="table-wrap">
      <table className="results" data-testid="accounts">
        <thead>
          <tr>
            <th scope="col">Account</th>
            <th scope="col">Role</th>
            <th scope="col">Security keys</th>
            <th scope="col">State</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {accounts.map((a) => (
            <tr key={a.username}>
              <th scope="row">{a.username}</th>
              <td>{a.role}</td>
              <td>{a.security_keys}</td>
              <td>{a.disabled_ms ? `disabled ${when(a.disabled_ms)}` : "active"}</td>
              <td>
                {!a.disabled_ms && (
                  <button type="button" onClick={() => void act(a, "disable")}>
                    Disable {a.username}
                  </button>
                )}
                {a.security_keys > 0 && (
                  <button type="button" onClick={() => void act(a, "reset")}>
                    Remove {a.username}'s keys
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      </div>
      <form className="change" onSubmit={(e) => void create(e)} aria-label="Create an account">
        <label>
          Username
          <input name="username" required pattern="[a-z0-9][a-z0-9._\-]+" maxLength={63} />
        </label>
        <label>
          Password (12 characters or more)
          <input name="password" type="password" required minLength={12} autoComplete="new-password" />
        </label>
        <label>
          Role
          <select name="role" defaultValue="viewer">
            <option>viewer</option>
            <option>analyst</option>
            <option>operator</option>
            <option>admin</option>
          </select>
        </label>
        <button type="submit">Create account</button>
      </form>
      {message && (
        <p role="status" data-testid="people-message">
          {message}
        </p>
      )}
    </>
  );
}
