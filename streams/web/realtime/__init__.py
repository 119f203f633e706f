"""Real-time publishing over WebSocket and SSE (see `streams.web.realtime.endpoints`)."""
