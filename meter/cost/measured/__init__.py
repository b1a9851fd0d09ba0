"""Where measurements become cost inputs: a run's rates (:mod:`.run`), a measured job's MFU
(:mod:`.job`), a serving benchmark's price and efficiency (:mod:`.bench`), and the spread a
measured quantity carries into the Monte Carlo (:mod:`.spread`)."""
