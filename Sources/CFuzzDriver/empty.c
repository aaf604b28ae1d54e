// CFuzzDriver has no code of its own (see include/fuzz_driver.h).
