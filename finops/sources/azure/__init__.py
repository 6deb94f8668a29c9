"""Azure Cost Management: the Query API through the official SDK."""
