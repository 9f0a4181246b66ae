{{/*
Pod template of a server: the serving Deployment and the writer StatefulSet.
Call with (dict "root" $ "component" "server"|"writer" "role" ""|"writer"|"replica"
"resources" RESOURCES "dataVolume" true|false); dataVolume false leaves /data to
the StatefulSet's volumeClaimTemplates.
*/}}
{{- define "xling.serverPodTemplate" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $threads := include "xling.threads" (dict "root" $root "resources" .resources) -}}
metadata:
  labels:
    {{- include "xling.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- /* Env comes from the ConfigMap and Secret only at start: their digests roll the pods on change. */}}
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- if include "xling.createSecret" $root }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- end }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "xling.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $values.serviceAccount.automountServiceAccountToken }}
  {{- with include "xling.imagePullSecrets" $root | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  securityContext:
    {{- toYaml $values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ include "xling.terminationGracePeriodSeconds" $root }}
  {{- with include "xling.scheduling" $root | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  containers:
    - name: xling
      image: {{ include "xling.image" $root }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      args: ["serve"]
      ports:
        - name: grpc
          containerPort: {{ $values.containerPorts.grpc }}
          protocol: TCP
        {{- if $values.metrics.enabled }}
        - name: metrics
          containerPort: {{ $values.metrics.port }}
          protocol: TCP
        {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "xling.fullname" $root }}
      env:
        {{- /* One BLAS thread per blocking job and a job per core: two jobs of two
               threads each on two cores cut Search throughput 30x (docs/benchmarks.md). */}}
        - name: OMP_NUM_THREADS
          value: "1"
        - name: XLING_OMP_NUM_THREADS
          value: "1"
        - name: XLING_WORKERS
          value: {{ $threads | quote }}
        - name: XLING_LOCAL_THREADS
          value: {{ $threads | quote }}
        {{- if .role }}
        - name: XLING_INDEX_ROLE
          value: {{ .role }}
        - name: XLING_SNAPSHOT_DIR
          value: /snapshots
        {{- end }}
        {{- if and $values.mistral.enabled (or $values.mistral.apiKey $values.mistral.existingSecret) }}
        - name: XLING_MISTRAL_API_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "xling.mistralSecretName" $root }}
              key: {{ $values.mistral.existingSecretKey }}
        {{- end }}
        {{- if eq $values.index.backend "pgvector" }}
        - name: XLING_POSTGRES_DSN
          valueFrom:
            secretKeyRef:
              name: {{ include "xling.postgresSecretName" $root }}
              key: {{ $values.index.postgres.existingSecretKey }}
        {{- end }}
        {{- if $values.auth.enabled }}
        - name: XLING_API_KEYS
          valueFrom:
            secretKeyRef:
              name: {{ include "xling.authSecretName" $root }}
              key: {{ $values.auth.secretKeys.apiKeys }}
        {{- end }}
        {{- if $values.tls.enabled }}
        - name: XLING_TLS_CERT_FILE
          value: /tls/tls.crt
        - name: XLING_TLS_KEY_FILE
          value: /tls/tls.key
        {{- if $values.tls.clientAuth }}
        - name: XLING_TLS_CLIENT_CA_FILE
          value: /tls/ca.crt
        {{- end }}
        {{- end }}
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- range $probe := list "startupProbe" "livenessProbe" "readinessProbe" }}
      {{- with index $values $probe }}
      {{ $probe }}:
        {{- if $values.tls.enabled }}
        {{- /* The kubelet's gRPC probe cannot speak TLS: it checks that the port accepts connections. */}}
        tcpSocket:
          port: {{ $values.containerPorts.grpc }}
        {{- else }}
        grpc:
          port: {{ $values.containerPorts.grpc }}
          service: {{ .service | quote }}
        {{- end }}
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      lifecycle:
        preStop:
          {{- /* Endpoints drop the pod while it sleeps, so the drain after SIGTERM sees no new calls. */}}
          exec:
            command: ["sleep", {{ $values.preStopSleepSeconds | quote }}]
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
        {{- if $values.tls.enabled }}
        {{- /* No subPath: the kubelet updates a renewed Secret in place and the server reloads it. */}}
        - name: tls
          mountPath: /tls
          readOnly: true
        {{- end }}
        {{- if .role }}
        - name: snapshots
          mountPath: /snapshots
          {{- if eq .role "replica" }}
          readOnly: true
          {{- end }}
        {{- end }}
  volumes:
    {{- /* The root filesystem is read-only: /tmp takes library caches and temporary files. */}}
    - name: tmp
      emptyDir: {}
    {{- if $values.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ $values.tls.existingSecret }}
    {{- end }}
    {{- if .dataVolume }}
    - name: data
      {{- if and (eq .component "server") (eq $values.search.mode "single") $values.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-data" (include "xling.fullname" $root)) $values.persistence.existingClaim }}
      {{- else if eq .component "writer" }}
      persistentVolumeClaim:
        claimName: {{ $values.persistence.existingClaim }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
    {{- if .role }}
    - name: snapshots
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-snapshots" (include "xling.fullname" $root)) $values.search.snapshots.existingClaim }}
        {{- if eq .role "replica" }}
        readOnly: true
        {{- end }}
    {{- end }}
{{- end -}}

{{/* Node placement of every pod of the release. */}}
{{- define "xling.nodePlacement" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Placement of the server pods, which also spread among themselves. */}}
{{- define "xling.scheduling" -}}
{{- include "xling.nodePlacement" . }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Pod spec of a batch client (xling CLI) calling the service.
Call with (dict "root" $ "name" CONTAINER "args" ARGS "target" HOST:PORT
"resources" RESOURCES "env" EXTRA_ENV "mounts" MOUNTS "volumes" VOLUMES).
*/}}
{{- define "xling.clientPodSpec" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
restartPolicy: Never
serviceAccountName: {{ include "xling.serviceAccountName" $root }}
automountServiceAccountToken: {{ $values.serviceAccount.automountServiceAccountToken }}
{{- with include "xling.imagePullSecrets" $root | trim }}
{{ . }}
{{- end }}
securityContext:
  {{- toYaml $values.podSecurityContext | nindent 2 }}
{{- with include "xling.nodePlacement" $root | trim }}
{{ . }}
{{- end }}
containers:
  - name: {{ .name }}
    image: {{ include "xling.image" $root }}
    imagePullPolicy: {{ $values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      - name: XLING_TARGET
        value: {{ .target | quote }}
      {{- include "xling.clientTLSEnv" $root | nindent 6 }}
      {{- if $values.auth.enabled }}
      - name: XLING_API_KEY
        valueFrom:
          secretKeyRef:
            name: {{ include "xling.authSecretName" $root }}
            key: {{ $values.auth.secretKeys.clientApiKey }}
      {{- end }}
      {{- with .env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      {{- toYaml $values.containerSecurityContext | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- include "xling.clientTLSMounts" $root | nindent 6 }}
      {{- toYaml .mounts | nindent 6 }}
volumes:
  - name: tmp
    emptyDir: {}
  {{- include "xling.clientTLSVolumes" $root | nindent 2 }}
  {{- toYaml .volumes | nindent 2 }}
{{- end -}}


{{/*
TLS of the chart's own clients (jobs, helm test): the server's CA from its
Secret's ca.crt at /tls, and with tls.clientAuth the client certificate of
tls.clientSecret at /tls-client. Each renders nothing without TLS.
*/}}
{{- define "xling.clientTLSEnv" -}}
{{- if .Values.tls.enabled -}}
- name: XLING_CA_CERT
  value: /tls/ca.crt
{{- if .Values.tls.clientAuth }}
- name: XLING_CLIENT_CERT
  value: /tls-client/tls.crt
- name: XLING_CLIENT_KEY
  value: /tls-client/tls.key
{{- end }}
{{- end -}}
{{- end -}}

{{- define "xling.clientTLSMounts" -}}
{{- if .Values.tls.enabled -}}
- name: tls
  mountPath: /tls
  readOnly: true
{{- if .Values.tls.clientAuth }}
- name: tls-client
  mountPath: /tls-client
  readOnly: true
{{- end }}
{{- end -}}
{{- end -}}

{{- define "xling.clientTLSVolumes" -}}
{{- if .Values.tls.enabled -}}
- name: tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- if .Values.tls.clientAuth }}
- name: tls-client
  secret:
    secretName: {{ .Values.tls.clientSecret }}
{{- end }}
{{- end -}}
{{- end -}}
