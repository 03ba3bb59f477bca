"""Tasks: batches of same-length clean/corrupt prompts with answers and a logit-difference metric,
and `evaluate`, a model's held-out scores on them."""

from interpwidgets.tasks.base import Task
from interpwidgets.tasks.brackets import brackets
from interpwidgets.tasks.induction import induction
from interpwidgets.tasks.ioi import ioi
from interpwidgets.tasks.metric import NonFiniteError
from interpwidgets.tasks.scores import evaluate

__all__ = ["NonFiniteError", "Task", "brackets", "evaluate", "induction", "ioi"]
