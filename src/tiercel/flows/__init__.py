"""Reading flow sources: YAML parsing, multi-document splitting and error locations."""
