"""Routes and helpers every HTTP handler shares: identities, organizations, request checks."""
