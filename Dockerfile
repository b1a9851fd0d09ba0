# syntax=docker/dockerfile:1
# Two images:
#   exporter: meter serve, small (no torch): docker build --target exporter -t gpu-cost-meter:0.1.0-exporter .
#   bench:    meter bench / run on CUDA:     docker build --target bench -t gpu-cost-meter:0.1.0-bench .

FROM python:3.12-slim AS exporter
WORKDIR /opt/gpu-cost-meter
COPY pyproject.toml README.md ./
COPY meter ./meter
COPY kernels ./kernels
COPY configs ./configs
# The exporter never imports torch: install the package without its torch dependency.
# grpcio and protobuf: pod attribution through the kubelet's pod-resources socket (the kubernetes extra).
RUN pip install --no-cache-dir "nvidia-ml-py>=12.535" "prometheus-client>=0.20" "pyyaml>=6.0" "bcrypt>=4.0" "numpy>=1.24" \
      "grpcio>=1.85.1" "protobuf>=7.35.1,<8" \
 && pip install --no-cache-dir --no-deps .
ENV METER_GIT_SHA=unknown
USER 65534:65534
EXPOSE 9401
ENTRYPOINT ["meter"]
CMD ["serve", "--host", "0.0.0.0", "--port", "9401"]

FROM pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime AS bench
WORKDIR /opt/gpu-cost-meter
COPY pyproject.toml README.md ./
COPY meter ./meter
COPY kernels ./kernels
COPY configs ./configs
RUN pip install --no-cache-dir "nvidia-ml-py>=12.535" "prometheus-client>=0.20" "pyyaml>=6.0" \
 && pip install --no-cache-dir --no-deps .
ENV METER_GIT_SHA=unknown
ENTRYPOINT ["meter"]
CMD ["run"]
