# The Config Management Plugin sidecar image: Argo CD's own image (it has kustomize, sh and
# the argocd user, uid 999) plus the capa-imds binary on $PATH and the plugin config.
# Build:  docker build -f examples/argocd/sidecar.Dockerfile -t <registry>/argocd-cmp-capa-imds:<tag> examples/argocd
ARG ARGOCD_VERSION=v3.0.0
ARG CAPA_IMDS_VERSION=v0.1.0
FROM ghcr.io/capa-imds/capa-imds:${CAPA_IMDS_VERSION} AS capa-imds

FROM quay.io/argoproj/argocd:${ARGOCD_VERSION}
# COPY --chmod keeps the executable bit whatever the build context's file modes are.
COPY --from=capa-imds --chmod=0755 /capa-imds /usr/local/bin/capa-imds
COPY plugin.yaml /home/argocd/cmp-server/config/plugin.yaml
USER 999
