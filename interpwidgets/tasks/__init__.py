"""Tasks: batches of same-length clean/corrupt prompts with answers and a logit-difference metric."""

from interpwidgets.tasks.base import Task
from interpwidgets.tasks.brackets import brackets
from interpwidgets.tasks.induction import induction
from interpwidgets.tasks.ioi import ioi

__all__ = ["Task", "brackets", "induction", "ioi"]
