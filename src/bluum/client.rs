//! Placeholder: the typed client for Bluum's webhook management API is being written.
