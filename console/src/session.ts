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

export async function signIn(username: string, password: string): Promise<string | null> {
  const response = await fetch("/api/v1/auth/sign-in", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) return problemText(response);
  set(await response.json());
  return null;
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

/** A call with the person's token; one refresh and retry when the token has run out. */
export async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const call = (token: string | undefined) =>
    fetch(path, {
      ...init,
      headers: { ...(init.headers ?? {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    });
  let response = await call(current?.access_token);
  if (response.status === 401 && current) {
    const next = await refresh();
    if (next) response = await call(next.access_token);
  }
  return response;
}

export { problemText };
