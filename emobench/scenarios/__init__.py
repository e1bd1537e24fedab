"""Scenarios: what is asked of the two pipelines. compare (sequential and paired loops), maxbatch,
finetune, and the model catalogue; each composes models, runtimes and measurements into a report."""
