# slotscaler as a container: the static binary that "make build" produced,
# FROM scratch, as a non-root user. Build with:
#   make build && docker build -t slotscaler:local .
# The container needs HAProxy's runtime socket and the Docker socket
# mounted (see examples/compose.yaml); give its user access to the Docker
# socket with --group-add <gid of /var/run/docker.sock>.
# With a registry at hand, README.md shows the multi-stage variant that
# compiles inside the build.
FROM scratch
COPY bin/slotscaler /slotscaler
COPY examples/slotscaler.yaml /etc/slotscaler/slotscaler.yaml
USER 65532:65532
EXPOSE 9180
ENTRYPOINT ["/slotscaler"]
CMD ["run", "--config", "/etc/slotscaler/slotscaler.yaml"]
