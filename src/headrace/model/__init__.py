"""What users build pipelines with: Pipeline, PCollection, PTransform, DoFn, windows, metrics."""
