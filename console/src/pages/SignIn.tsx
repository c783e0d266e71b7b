import { useState, type FormEvent } from "react";
import { signIn } from "../session";

export function SignInPage({ reason }: { reason: string }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    const failed = await signIn(String(form.get("username")), String(form.get("password")));
    setBusy(false);
    if (failed) setError(failed);
  }

  return (
    <main className="sign-in">
      <h1>Meta-ΔDΩΛ</h1>
      <form onSubmit={(e) => void submit(e)} aria-label="Sign in">
        <label>
          Username
          <input name="username" autoComplete="username" required autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required />
        </label>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {(error || reason) && (
          <p role="alert" className="error">
            {error || reason}
          </p>
        )}
      </form>
    </main>
  );
}
