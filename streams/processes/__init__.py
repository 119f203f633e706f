"""Process managers hosted over the log: one transactional stage per manager (`stage`)."""
