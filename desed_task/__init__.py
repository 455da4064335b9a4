"""desed_task: sound event detection research code (DESED, DCASE Task 4 recipes); see README.md."""
from desed_task.utils.logs import filter_harmless_warnings

filter_harmless_warnings()
