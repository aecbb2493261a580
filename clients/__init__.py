"""Programs that connect to a gameserver as players: bots and load generators."""
