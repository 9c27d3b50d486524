print("doorman")
