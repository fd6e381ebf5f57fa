"""The service layer: the Studio facade and its capabilities (conversation, regions, batch), visitors and sending."""
