"""Other tools' result files, read into meter's typed objects.

Serving benchmarks (vLLM's ``vllm bench serve`` and ``benchmark_serving.py``, SGLang's
``bench_serving``) become :class:`meter.engines.serving.ServingBenchmark` results, which
``meter cost serve --from-bench`` prices; nccl-tests' text output becomes a communication run
(kind ``import``) that ``meter cost cluster --comm-run`` takes. Each reader checks the fields it
uses and refuses a bad file with one line naming the file, the field and the value.
"""
