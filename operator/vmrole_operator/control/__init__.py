"""The control loop: what the operator writes, and when. Every step reads what it needs from the API
objects (never from memory alone), is safe to repeat, and deletes only with a UID precondition, so
a restarted operator finishes each request exactly once."""
