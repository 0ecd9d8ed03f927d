"""The IO edges shared by the client and the agent: sockets per scheme, the frame writer,
the asyncio protocol adapter around the sans-IO connection, and error mapping."""
