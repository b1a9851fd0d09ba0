"""Where measurements become cost inputs: a run's rates (:mod:`.run`), a measured job's MFU
(:mod:`.job`), a serving benchmark's efficiency (:mod:`.bench`), measured serving points
as observations of the step model (:mod:`.serving_points`), and the spread a measured quantity
carries into the Monte Carlo (:mod:`.spread`)."""
