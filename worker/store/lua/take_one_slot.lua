-- One send's slot of a rate budget (after take_slot.lua). Returns 0 if taken, else the ms until one frees.
local budget = unpack(KEYS)
local limit, window, unique = unpack(ARGV)
return take_slot(budget, tonumber(limit), tonumber(window), unique)
