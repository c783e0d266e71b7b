import { useEffect, useState } from "react";
import { onChange, refresh, signOut, who, type SignedIn } from "./session";
import { SignInPage } from "./pages/SignIn";
import { Overview } from "./pages/Overview";

export function App() {
  const [person, setPerson] = useState<SignedIn | null>(who());
  const [reason, setReason] = useState<string>("");
  const [resuming, setResuming] = useState(true);

  useEffect(() => {
    const off = onChange((next, why) => {
      setPerson(next);
      if (!next && why) setReason(why);
    });
    // a reload: the tab's refresh token, if any, resumes the sign-in
    void refresh().finally(() => setResuming(false));
    return off;
  }, []);

  if (resuming && !person) return <p className="loading">Loading…</p>;
  if (!person) return <SignInPage reason={reason} />;
  return (
    <div className="shell">
      <header className="top">
        <span className="brand">Meta-ΔDΩΛ</span>
        <nav aria-label="Pages">
          <a href="/console/" aria-current="page">
            Overview
          </a>
        </nav>
        <span className="who" data-testid="who">
          {person.username} · {person.role}
        </span>
        <button type="button" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <main>
        <Overview person={person} />
      </main>
    </div>
  );
}
