"""What the pusher and the server must agree on, written once and imported by both sides:
reason codes (:mod:`.codes`) and the batch acknowledgement (:mod:`.ack`)."""
