{{- define "capa-eks.bootstrapKind" -}}
{{- if hasPrefix "AL2023" .Values.nodeGroup.amiType -}}NodeadmConfig{{- else -}}EKSConfig{{- end -}}
{{- end -}}
