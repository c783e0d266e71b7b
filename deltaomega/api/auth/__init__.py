"""Who may call the API: each route's declared access, and the guard that enforces it."""
