"""shipyard.evaluation: metrics, the HTML run report and the model card.

- ``metrics.compute_metrics(task, y_true, outputs, labels)`` -> JSON-able metric dict
- ``report.write_report(run_dir, ...)`` -> ``run_dir/report.html`` (self-contained)
- ``model_card.write_model_card(run_dir, ...)`` -> ``run_dir/model_card.md``

Submodules are imported explicitly (not re-exported here) so that importing the package stays cheap: the report
pulls in matplotlib and jinja2, which the serving path never needs.
"""
