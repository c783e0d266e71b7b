import { lazy, Suspense, useEffect, useState } from "react";
import { may, onChange, refresh, signOut, who, type Role, type SignedIn } from "./session";
import { Link, usePath } from "./router";
import { SignInPage } from "./pages/SignIn";
import { Overview } from "./pages/Overview";

// pages past the overview load when first opened: the first load stays small
const Voice = lazy(() => import("./pages/Voice").then((m) => ({ default: m.Voice })));
const Alerts = lazy(() => import("./pages/Alerts").then((m) => ({ default: m.Alerts })));
const Workbench = lazy(() => import("./pages/Workbench").then((m) => ({ default: m.Workbench })));
const Dynamics = lazy(() => import("./pages/Dynamics").then((m) => ({ default: m.Dynamics })));
const Predictions = lazy(() =>
  import("./pages/Predictions").then((m) => ({ default: m.Predictions })),
);
const Audit = lazy(() => import("./pages/Audit").then((m) => ({ default: m.Audit })));
const Account = lazy(() => import("./pages/Account").then((m) => ({ default: m.AccountPage })));
const Orchestration = lazy(() =>
  import("./pages/Orchestration").then((m) => ({ default: m.OrchestrationPage })),
);

const PAGES: { path: string; title: string; role: Role }[] = [
  { path: "/", title: "Overview", role: "viewer" },
  { path: "/dynamics", title: "Dynamics", role: "viewer" },
  { path: "/predictions", title: "Predictions", role: "analyst" },
  { path: "/alerts", title: "Alerts", role: "viewer" },
  { path: "/orchestration", title: "Orchestration", role: "viewer" },
  { path: "/workbench", title: "Workbench", role: "analyst" },
  { path: "/audit", title: "Audit", role: "admin" },
  { path: "/account", title: "Account", role: "viewer" },
];

function useOnline(): boolean {
  const [online, setOnline] = useState(navigator.onLine);
  useEffect(() => {
    const on = () => setOnline(true);
    const off = () => setOnline(false);
    window.addEventListener("online", on);
    window.addEventListener("offline", off);
    return () => {
      window.removeEventListener("online", on);
      window.removeEventListener("offline", off);
    };
  }, []);
  return online;
}

export function App() {
  const [person, setPerson] = useState<SignedIn | null>(who());
  const [reason, setReason] = useState<string>("");
  const [resuming, setResuming] = useState(true);
  const path = usePath();
  const online = useOnline();

  useEffect(() => {
    const off = onChange((next, why) => {
      setPerson(next);
      if (!next && why) setReason(why);
    });
    // a reload: the tab's refresh token, if any, resumes the sign-in
    void refresh().finally(() => setResuming(false));
    return off;
  }, []);

  const offline = online ? null : (
    <p className="offline" role="status" data-testid="offline">
      You are offline: what is shown may be out of date, and changes cannot be made.
    </p>
  );
  if (!online && !person) return offline;
  if (resuming && !person) return <p className="loading">Loading…</p>;
  if (!person) return <SignInPage reason={reason} />;
  const voice = path.match(/^\/voices\/(.+)$/);
  let page;
  if (voice) page = <Voice person={person} voice={decodeURIComponent(voice[1])} />;
  else if (path === "/alerts") page = <Alerts person={person} />;
  else if (path === "/orchestration") page = <Orchestration person={person} />;
  else if (path === "/workbench" && may(person.role, "analyst")) page = <Workbench />;
  else if (path === "/account") page = <Account person={person} />;
  else if (path === "/audit" && may(person.role, "admin")) page = <Audit />;
  else if (path === "/dynamics") page = <Dynamics person={person} />;
  else if (path === "/predictions" && may(person.role, "analyst")) page = <Predictions />;
  else page = <Overview person={person} />;
  return (
    <div className="shell">
      <header className="top">
        <span className="brand">Meta-ΔDΩΛ</span>
        <nav aria-label="Pages">
          {PAGES.filter((p) => may(person.role, p.role)).map((p) => (
            <Link key={p.path} to={p.path} current={p.path === path}>
              {p.title}
            </Link>
          ))}
        </nav>
        <span className="who" data-testid="who">
          {person.username} · {person.role}
        </span>
        <button type="button" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      {offline}
      <main>
        <Suspense fallback={<p className="loading">Loading…</p>}>{page}</Suspense>
      </main>
    </div>
  );
}
