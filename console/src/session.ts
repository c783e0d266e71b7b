// A person's sign-in: the access token lives in memory only; the refresh token in this
// tab's session storage, so a reload keeps the sign-in and closing the tab ends it here.
// Each refresh returns the next refresh token (the server ends the sign-in when one is
// used twice).

export interface SignedIn {
  username: string;
  role: Role;
  session: string;
  access_token: string;
  expires_in: number;
  refresh_token: string;
}

export type Role = "viewer" | "analyst" | "operator" | "admin";
const RANK: Record<Role, number> = { viewer: 1, analyst: 2, operator: 3, admin: 4 };

export function may(role: Role | undefined, needed: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[needed];
}

const KEY = "deltaomega.refresh";
type Listener = (who: SignedIn | null, reason?: string) => void;

let current: SignedIn | null = null;
let refreshing: Promise<SignedIn | null> | null = null;
let timer: number | undefined;
const listeners = new Set<Listener>();

export function onChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function who(): SignedIn | null {
  return current;
}

function set(next: SignedIn | null, reason?: string): void {
  current = next;
  window.clearTimeout(timer);
  if (next) {
    sessionStorage.setItem(KEY, next.refresh_token);
    // refresh a little before the access token runs out
    timer = window.setTimeout(() => void refresh(), Math.max(5, next.expires_in - 30) * 1000);
  } else {
    sessionStorage.removeItem(KEY);
  }
  listeners.forEach((l) => l(next, reason));
}

async function problemText(response: Response): Promise<string> {
  try {
    const body = await response.json();
    return body.detail ?? body.title ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

interface KeyCeremony {
  ceremony: string;
  public_key: PublicKeyCredentialRequestOptionsJSON;
}

/** The browser asks the person's security key to answer the server's challenge. */
async function answer(ceremony: KeyCeremony): Promise<{ ceremony: string; credential: unknown } | string> {
  if (!window.PublicKeyCredential) return "this browser has no security-key support";
  try {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(ceremony.public_key);
    const credential = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential | null;
    if (!credential) return "no security key answered";
    return { ceremony: ceremony.ceremony, credential: credential.toJSON() };
  } catch (error) {
    return `the security key did not answer (${(error as Error).name})`;
  }
}

export async function signIn(username: string, password: string): Promise<string | null> {
  const post = (path: string, body: unknown) =>
    fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  let response = await post("/api/v1/auth/sign-in", { username, password });
  if (!response.ok) return problemText(response);
  const body = await response.json();
  if (body.second_factor === "security-key") {
    const answered = await answer(body);
    if (typeof answered === "string") return answered;
    response = await post("/api/v1/auth/sign-in/security-key", answered);
    if (!response.ok) return problemText(response);
    set(await response.json());
    return null;
  }
  set(body);
  return null;
}

/** Prove a security key for this sign-in: an access token that allows emergency actions
 * for a few minutes. An error message when it could not be done. */
export async function stepUp(): Promise<string | null> {
  if (!current) return "not signed in";
  const begun = await api("/api/v1/auth/step-up/challenge", { method: "POST" });
  if (!begun.ok) return problemText(begun);
  const answered = await answer(await begun.json());
  if (typeof answered === "string") return answered;
  const proved = await api("/api/v1/auth/step-up", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(answered),
  });
  if (!proved.ok) return problemText(proved);
  const stepped = await proved.json();
  if (current) current = { ...current, access_token: stepped.access_token };
  return null;
}

/** Register a new security key (the browser makes a key pair on it). */
export async function registerKey(name: string): Promise<string | null> {
  const begun = await api("/api/v1/auth/security-keys/challenge", { method: "POST" });
  if (!begun.ok) return problemText(begun);
  const ceremony = await begun.json();
  let credential: PublicKeyCredential | null;
  try {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(ceremony.public_key);
    credential = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential | null;
  } catch (error) {
    return `the security key was not registered (${(error as Error).name})`;
  }
  if (!credential) return "no security key answered";
  const saved = await api("/api/v1/auth/security-keys", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ceremony: ceremony.ceremony, credential: credential.toJSON(), name }),
  });
  return saved.ok ? null : problemText(saved);
}

/** The next tokens; null (and signed out) when the sign-in is over. */
export function refresh(): Promise<SignedIn | null> {
  const token = current?.refresh_token ?? sessionStorage.getItem(KEY);
  if (!token) return Promise.resolve(null);
  refreshing ??= (async () => {
    try {
      const response = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
      if (!response.ok) {
        set(null, await problemText(response));
        return null;
      }
      const next: SignedIn = await response.json();
      set(next);
      return next;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export async function signOut(): Promise<void> {
  const token = current?.refresh_token;
  set(null, "signed out");
  if (token) {
    await fetch("/api/v1/auth/sign-out", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: token }),
    });
  }
}

/** A call with the person's token; one refresh and retry when the token has run out, one
 * security-key step-up and retry when the action needs it (RFC 9470). A step-up that could
 * not be made leaves the refusal as the answer. */
export async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const call = (token: string | undefined) =>
    fetch(path, {
      ...init,
      headers: { ...(init.headers ?? {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    });
  let response = await call(current?.access_token);
  if (response.status !== 401 || !current) return response;
  if ((response.headers.get("WWW-Authenticate") ?? "").includes("insufficient_user_authentication")) {
    if (path.startsWith("/api/v1/auth/step-up")) return response;
    const refused = await problemText(response);
    const failed = await stepUp();
    if (!failed) return call(current?.access_token);
    const body = { title: "Step-up required", status: 401, detail: `Refused: ${refused} (${failed})` };
    return new Response(JSON.stringify(body), {
      status: 401,
      headers: { "Content-Type": "application/problem+json" },
    });
  }
  const next = await refresh();
  if (next) response = await call(next.access_token);
  return response;
}

export { problemText };

const b64url = (buffer: ArrayBuffer | null) =>
  buffer
    ? btoa(String.fromCharCode(...new Uint8Array(buffer)))
        .replace(/\+/g, "-")
        .replace(/\//g, "_")
        .replace(/=+$/, "")
    : "";

/** Notifications of critical alerts on this device: the permission, the browser's push
 * subscription (with the server's key), and the subscription stored for this person.
 * An error message when one of them could not be had. */
export async function turnOnNotifications(): Promise<string | null> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    return "this browser cannot receive notifications";
  }
  const permission = await Notification.requestPermission();
  if (permission !== "granted") return `notifications are ${permission} for this site`;
  const key = await api("/api/v1/push/key");
  if (!key.ok) return problemText(key);
  const serverKey: string = (await key.json()).public_key;
  const registration = await navigator.serviceWorker.ready;
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && b64url(subscription.options.applicationServerKey) !== serverKey) {
    await subscription.unsubscribe(); // made with a key the server no longer signs with
    subscription = null;
  }
  try {
    subscription ??= await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: serverKey,
    });
  } catch (error) {
    return `permission granted, but the browser's push service did not subscribe (${(error as Error).message})`;
  }
  const saved = await api("/api/v1/push/subscriptions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...subscription.toJSON(), device: navigator.userAgent.slice(0, 200) }),
  });
  return saved.ok ? null : problemText(saved);
}
