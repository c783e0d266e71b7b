"""Who calls the API: roles, and the tokens that carry them."""
