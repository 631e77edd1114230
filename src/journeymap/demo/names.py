"""Name banks for companies and people. Combinations, not lists of real firms or persons."""

from __future__ import annotations

COMPANY_FIRST = (
    "Blue", "North", "Silver", "Bright", "Iron", "Clear", "Red", "Green", "High", "Swift", "Stone", "Oak",
    "Cedar", "Summit", "Harbor", "River", "Pine", "Golden", "True", "Open", "Prime", "Nova", "Atlas", "Vista",
    "Maple", "Quarry", "Lantern", "Beacon", "Falcon", "Copper", "Polar", "Meadow", "Crest", "Ember", "Tidal",
)
COMPANY_SECOND = (
    "peak", "wind", "field", "stone", "bridge", "path", "line", "point", "gate", "works", "wave", "leaf",
    "grid", "forge", "light", "loop", "shore", "scale", "mark", "span", "frame", "yard", "sky", "rock",
)
COMPANY_SUFFIX = {
    "software": ("Labs", "Software", "Systems", "Cloud", "IO"),
    "ecommerce": ("Goods", "Market", "Supply", "Outfitters", "Store"),
    "financial_services": ("Capital", "Financial", "Bank", "Partners", "Insurance"),
    "healthcare": ("Health", "Clinics", "Care", "Medical", "Bio"),
    "manufacturing": ("Industries", "Manufacturing", "Components", "Machining", "Materials"),
    "media": ("Media", "Studios", "Publishing", "Creative", "Network"),
    "education": ("Learning", "Academy", "Education", "Schools", "Tutoring"),
}
FIRST_NAMES = (
    "Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Priya", "Wei",
    "Fatima", "Lucas", "Sofia", "Mateo", "Chloe", "Noah", "Amara", "Kenji", "Elena", "Omar", "Hannah", "Luca",
    "Maya", "Diego", "Aisha", "Jonas", "Nina", "Arjun", "Leila", "Felix", "Ines", "Tomas", "Yara", "Ravi",
    "Grace", "Ethan", "Zoe", "Mei", "Pavel", "Sara", "Kofi", "Ana", "Liam", "Emma", "Hugo", "Ingrid",
)
LAST_NAMES = (
    "Smith", "Garcia", "Chen", "Patel", "Kim", "Nguyen", "Muller", "Rossi", "Silva", "Cohen", "Okafor", "Ivanova",
    "Johnson", "Lopez", "Tanaka", "Schmidt", "Dubois", "Novak", "Haddad", "Larsen", "Brown", "Singh", "Moreau",
    "Costa", "Walker", "Sato", "Fischer", "Mendes", "Hughes", "Ali", "Bauer", "Reyes", "Khan", "Berg", "Wright",
    "Yilmaz", "Kowalski", "Adeyemi", "Murphy", "Lindqvist", "Romero", "Park", "Evans", "Dang", "Ortiz", "Quinn",
)
ROLES = ("analyst", "data_engineer", "head_of_data", "product_manager", "marketing_ops", "finance", "executive",
         "engineer", "ops_manager")
SALES_REPS = ("Dana Whitfield", "Marcus Lee", "Priya Raman", "Tom Becker", "Lucia Ferri", "Owen Clarke",
              "Hana Sato", "Victor Alves")
SELF_SERVE_OWNER = "Self-serve queue"
