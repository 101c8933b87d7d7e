"""The support console: server-side rendered pages for support staff, behind a login, on the CLI's core."""
