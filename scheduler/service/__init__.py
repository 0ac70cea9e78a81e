"""Plain functions behind the RPCs: they take the caller and domain values, and
raise domain errors. The servicers only convert and delegate."""
