"""The project's input resources: schemas, typed objects and parsing with field-path errors."""
