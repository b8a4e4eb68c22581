"""`python -m shared.relay SERVICE COLLECTION...`: a service's outbox relay process."""

from shared.processes import relay_main

if __name__ == "__main__":
    relay_main()
