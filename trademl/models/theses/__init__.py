"""The thesis model: a shared encoder with structure, claims and decision heads (`model`),
teacher signals from rules over the platform's features (`teacher`), the JSON Schema every
generated thesis is validated against (`schema`), supervised fine-tuning on the teachers and
pairwise ranking reinforcement on realized returns (`train`), and the walk-forward evaluation
and gate (`evaluate`)."""
