"""Publishing: the folder assembled from unit files, its dataset card, and the release on the Hub."""
