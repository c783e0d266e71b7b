// Server-sent events with the person's token (EventSource cannot send an Authorization
// header): the stream read with fetch, split into events; it reconnects from the last id.
import { api } from "./session";

export interface FeedEvent {
  event: string;
  id: string;
  data: unknown;
}

export function follow(
  path: string,
  onEvents: (events: FeedEvent[]) => void,
  onStatus: (status: string) => void,
): () => void {
  const stop = new AbortController();
  let last = "";
  (async () => {
    while (!stop.signal.aborted) {
      try {
        const headers: Record<string, string> = { Accept: "text/event-stream" };
        if (last) headers["Last-Event-ID"] = last;
        const response = await api(path, { headers, signal: stop.signal });
        if (!response.ok || !response.body) {
          onStatus(`feed refused (HTTP ${response.status})`);
          await new Promise((r) => setTimeout(r, 5000));
          continue;
        }
        onStatus("live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          const blocks = buffer.split(/\r?\n\r?\n/);
          buffer = blocks.pop() ?? "";
          const events: FeedEvent[] = [];
          for (const block of blocks) {
            let event = "message";
            let id = "";
            const data: string[] = [];
            for (const line of block.split(/\r?\n/)) {
              if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("id:")) id = line.slice(3).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (!data.length) continue;
            if (id) last = id;
            try {
              events.push({ event, id, data: JSON.parse(data.join("\n")) });
            } catch {
              events.push({ event, id, data: data.join("\n") });
            }
          }
          if (events.length) onEvents(events);
        }
        onStatus("reconnecting");
      } catch {
        if (stop.signal.aborted) return;
        onStatus("reconnecting");
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  })();
  return () => stop.abort();
}
