"""Settings: the models of taxonomy.yaml's `generation:` block, and reading YAML with file:line errors."""
