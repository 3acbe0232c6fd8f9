"""What `meshstack init` writes: a project's files as package data (meshstack.scaffold fills them in)."""
