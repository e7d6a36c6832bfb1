"""Server-rendered pages, their templates, static files and translations."""
