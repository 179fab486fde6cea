"""Pre-deployment checks of a model version: what could go wrong once it serves real traffic.

Pure computation: the checks load the model and its registered files, predict and time, and
return results. They write nothing; the caller (registry/check_runs.py) stores the outcome and
moves the version on. Every check reports its own failure (including an exception) so that one
broken check never hides the others.

`runner.run_checks` runs them all; each check is a module of its own, and `results` and `context`
hold what they share.
"""
