"""Planning a study: declaring it (study), resolving it into a plan (resolve), the plan as pure
data (plan), tasks, and how trials pack onto nodes (packing)."""
