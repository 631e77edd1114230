"""Acting on the journey: playbooks evaluated at every refresh, their entries, the outbox their actions are
delivered from, tasks, and holdouts (docs/act.md)."""
