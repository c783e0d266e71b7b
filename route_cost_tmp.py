import tempfile, threading, time, uuid, resource
from pathlib import Path
import httpx, uvicorn
from bench._common import local_broker
from bench.read_load import preload, routes
from deltaomega.config import Settings
from deltaomega.logs import configure_logging
from deltaomega.service import build_app
from deltaomega.sinks.clickhouse import connect
from deltaomega.topics import ensure_topics
configure_logging("WARNING")
tmp = tempfile.mkdtemp()
tag = uuid.uuid4().hex[:8]
s = Settings(kafka_bootstrap=local_broker(), topic_prefix=f"rc{tag}.", app_id=f"rc-{tag}", data_dir=Path(tmp), clickhouse_database=f"rc_{tag}", models_enabled=False, api_port=8767)
ensure_topics(s); preload(s, 300000, 1000)
ch = connect(s); app = build_app(s, ch)
srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=8767, log_config=None)); threading.Thread(target=srv.run, daemon=True).start()
db = s.clickhouse_database
while True:
    try:
        if ch.call(lambda c: c.query(f"SELECT count() FROM {db}.voice_events").result_rows[0][0]) >= 300000: break
    except Exception: pass
    time.sleep(0.2)
time.sleep(2)
http = httpx.Client(base_url="http://127.0.0.1:8767", timeout=30)
for path in routes(1000):
    r = http.get(path)
    cpu0 = time.process_time(); t0 = time.perf_counter()
    for _ in range(5):
        r = http.get(path)
    print(f"{path}: {(time.perf_counter()-t0)/5*1000:.1f} ms wall, {(time.process_time()-cpu0)/5*1000:.1f} ms cpu, {len(r.content)} bytes, {r.status_code}")
